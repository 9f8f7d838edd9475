//! A site's services on DynamoDB: one item each in the site's partition
//! (`SK = SERVICE#{name}`), created only beside an existing site and never over another.

use slipway_core::names::{ServiceName, SiteName};
use slipway_core::ports::StateError;
use slipway_core::records::ServiceRecord;
use slipway_core::service::Service;

use super::expressions::Placeholders;
use super::items::{from_item, key, site_pk, to_item};
use super::{request_failed, DynamoState, Item};

const SERVICE_SK_PREFIX: &str = "SERVICE#";

fn service_key(site: &SiteName, service: &ServiceName) -> Item {
    key(site_pk(site), format!("{SERVICE_SK_PREFIX}{service}"))
}

fn service_item(service: &Service) -> Result<Item, StateError> {
    let mut item = to_item(&ServiceRecord::from(service))?;
    item.extend(service_key(&service.site, &service.name));
    Ok(item)
}

/// A stored service, whose settings are checked again as they are read.
fn stored_service(item: Item) -> Result<Service, StateError> {
    Service::try_from(from_item::<ServiceRecord>(item)?)
        .map_err(|e| StateError::Unavailable(Box::new(e)))
}

impl DynamoState {
    pub(super) async fn put_new_service(&self, service: &Service) -> Result<(), StateError> {
        let existing = || async {
            match self.load_service(&service.site, &service.name).await {
                Ok(_) => Ok(Some(StateError::ServiceExists {
                    site: service.site.clone(),
                    service: service.name.clone(),
                })),
                Err(StateError::ServiceNotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        };
        self.put_new_in_site(
            &service.site,
            service_item(service)?,
            "create_service",
            existing,
        )
        .await
    }

    /// The service; a missing one is SiteNotFound when the site is missing too.
    pub(super) async fn load_service(
        &self,
        site: &SiteName,
        service: &ServiceName,
    ) -> Result<Service, StateError> {
        match self.get_item(service_key(site, service)).await? {
            Some(item) => stored_service(item),
            None => {
                self.load_site(site).await?;
                Err(StateError::ServiceNotFound {
                    site: site.clone(),
                    service: service.clone(),
                })
            }
        }
    }

    pub(super) async fn site_services(&self, site: &SiteName) -> Result<Vec<Service>, StateError> {
        self.site_items(site, SERVICE_SK_PREFIX, true)
            .await?
            .into_iter()
            .map(stored_service)
            .collect()
    }

    pub(super) async fn remove_service(
        &self,
        site: &SiteName,
        service: &ServiceName,
    ) -> Result<(), StateError> {
        let mut p = Placeholders::default();
        let condition = p.exists();
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(service_key(site, service)))
            .condition_expression(condition)
            .set_expression_attribute_names(p.names())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                self.load_site(site).await?;
                Err(StateError::ServiceNotFound {
                    site: site.clone(),
                    service: service.clone(),
                })
            }
            Err(e) => Err(request_failed("DeleteItem", e)),
        }
    }
}
